SELECT '{{ ds }}' AS day, {{ params.n }} AS n

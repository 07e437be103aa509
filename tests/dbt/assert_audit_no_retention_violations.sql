-- After a completed reset no student row of last year remains and no retained row
-- is lost. Fails with one row per district and table that breaks it.
select * from {{ ref('audit_retention_violations') }}

"""The vendor's dbt project holds no tests of its own; once installed, its `dbt_packages/`
links back to this checkout, whose tests pytest must not collect a second time."""

collect_ignore = ["project"]

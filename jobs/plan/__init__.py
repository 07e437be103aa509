"""Who is due and what goes: the dbt invocation, the plan file, its checks before a run and its
approval (SPEC §4, §5, §8)."""

"""Who is due and what goes: the dbt invocation, the plan file, its checks before a run and its
approval."""

from jobs.plan.approval import approve_plan, load_approved_plan
from jobs.plan.dbt import run_dbt
from jobs.plan.planner import load_plan, make_plan, write_plan

__all__ = ["approve_plan", "load_approved_plan", "load_plan", "make_plan", "run_dbt", "write_plan"]

"""The reset of one district and of a run (SPEC §6): the one verified pass that snapshots and
deletes, the runner and its view, the import syncs around it, and restore."""

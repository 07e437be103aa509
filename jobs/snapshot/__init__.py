"""Snapshots (SPEC §7): their layout and manifests, fingerprints, writing and verifying, the
district's copy, retention and holds."""

"""The web console (`eoy-reset serve`): district self-service, the CSM's desk, the reviewer's
approval and the operator's runs, with accounts, sessions and CSRF tokens."""

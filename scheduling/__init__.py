"""The scheduler's machinery, one concept a module: `cron` (crontab expressions as APScheduler 3 triggers, and
which trigger time is due), `leader` (one active scheduler per store), `runs` (one run of a job: claimed in the
ledger, run, its outcome recorded) and `loop` (the leader loop that fires the jobs). The jobs themselves, and so
what the scheduler does, are listed in `creditbridge.scheduler`; the ledger table's reads and writes live beside
the table in `creditbridge.store.job_ledger`."""

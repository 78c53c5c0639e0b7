"""`creditbridge quickstart`: the main job end to end on the embedded defaults (sandbox LMS, webhook
receiver, registry simulator and a SQLite store, all in one process on 127.0.0.1)."""

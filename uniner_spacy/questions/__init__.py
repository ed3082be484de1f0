"""The questions we ask a model and how its answers are read: `prompts` (the exact templates) and
`parsing` (raw answer → mention strings). A leaf: the backends build prompts and read answers with
it, the pipeline asks and parses with it, and it imports neither."""

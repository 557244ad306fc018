"""One module per subtask, each with ``predict(cases, ...) -> {case_id: prediction}``.

interpret (ST1) · identify (ST2) · generate (ST3) · align (ST4)
"""

SUBTASK_MODULES = {1: "interpret", 2: "identify", 3: "generate", 4: "align"}

"""The driver: the process that starts a job's roles on Ray, follows them and stops them.

One module per command under `driver.commands`, behind the thin CLI (`launch.py`, `driver.cli`);
what several commands share: the job's inputs (`inputs`), the Ray session with its signals and
exit codes (`session`), the roles wired together (`roles`), a training run (`run`) and its
progress bar (`progress`). Benchmarks and tests compose these modules; nothing imports launch.py.
"""

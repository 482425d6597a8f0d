"""Locust's fast user hitting the same trivial endpoint as the sender (bench/loadgen.py runs it)."""

import os

from locust import FastHttpUser, constant, task


class Trivial(FastHttpUser):
    wait_time = constant(0)  # closed loop, as fast as it goes: its top rate

    @task
    def work(self) -> None:
        self.client.get(os.environ.get("BENCH_PATH", "/tasks/task1"))

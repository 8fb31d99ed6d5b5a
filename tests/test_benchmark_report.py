from benchmarks.report import write_section


def test_sections_are_added_then_replaced_in_place(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    write_section("A", "cmd a", "m", "| x |\n|---|\n| 1 |", path)
    write_section("B", "cmd b", "m", "b body", path)
    write_section("A", "cmd a", "m", "| x |\n|---|\n| 2 |", path)
    text = path.read_text()
    assert text.startswith("# Benchmarks")
    assert text.count("## A") == 1 and "| 2 |" in text and "| 1 |" not in text
    # Replacing A kept B, and kept the order.
    assert text.index("## A") < text.index("## B") and "b body" in text


def test_a_load_window_summarises_latency_rates_and_training():
    from benchmarks.live_load import Window

    # Latencies 0.1 .. 1.0 s over 10 s with 5 learner steps of 2 groups. Linear percentiles:
    # p50 sits halfway between the 5th and 6th (0.55), p99 at 8.91 of 9 gaps (0.9 + 0.91 x 0.1).
    window = Window(latencies_s=[0.1 * i for i in range(1, 11)], errors=["e"], seconds=10.0, steps=5)
    summary = window.summary(groups_per_step=2)
    assert (summary["requests"], summary["errors"], summary["requests_per_s"]) == (10, 1, 1.0)
    assert (summary["p50_s"], summary["p99_s"], summary["groups_per_s"]) == (0.55, 0.991, 1.0)

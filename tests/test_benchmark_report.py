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

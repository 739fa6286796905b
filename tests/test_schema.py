"""data/schema.py: reading split CSVs, their columns and lines, and the errors that name the file and line."""

import pytest
from data_files import write_text

from data.schema import SchemaError, load_table, read_table


def test_read_table_columns_lines_and_extra_columns(tmp_path):
    text = 'path,label,split,camera\na.png,0,train,x\n"b,1.png",1,test,y\nc.png,1,val,"two\nlines"\nd.png,0,val,z\n'
    csv_path = write_text(tmp_path / "s.csv", text)
    table, problems = read_table(csv_path)
    assert problems == []
    assert len(table) == 4
    assert table.column_names == ["path", "label", "split", "camera"]
    assert table.column("camera") == ["x", "y", "two\nlines", "z"]  # extra columns are kept
    assert table.labels.tolist() == [0, 1, 1, 0]
    assert table.line(3) == 6  # after a quoted value spanning lines 4 and 5
    assert table.root == tmp_path.resolve()
    assert table.resolve(1) == tmp_path.resolve() / "b,1.png"
    assert [table.line(0), table.line(1)] == [2, 3]
    with pytest.raises(SchemaError, match="no column 'generator'"):
        table.column("generator")


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("path,split\na.png,train\n", "lacks the required column\\(s\\) label"),
        ("path,label,path\na.png,0,b.png\n", "repeats the column\\(s\\) path"),
        ("path,label,split\na.png,0,train\nb.png,1\n", "line 3 has 2 fields but the header has 3"),
    ],
    ids=["missing", "empty", "no-label", "duplicate-column", "field-count"],
)
def test_read_table_unusable_files(tmp_path, text, message):
    csv_path = tmp_path / "s.csv"
    if text is not None:
        write_text(csv_path, text)
    with pytest.raises(SchemaError, match=message) as info:
        read_table(csv_path)
    assert str(csv_path) in str(info.value)


def test_read_table_row_problems_name_their_lines(tmp_path):
    csv_path = write_text(
        tmp_path / "s.csv",
        "path,label,split\n"  # line 1
        "a.png,0,train\n"  # line 2: fine
        "b.png,2,train\n"  # line 3: bad label
        "c.png,fake,val\n"  # line 4: bad label
        "d.png,1,validation\n"  # line 5: unknown split, with a hint
        ",1,test\n"  # line 6: empty path
        "\n"  # line 7: blank, skipped
        "e.png,3,test\n",  # line 8: bad label after a blank line
    )
    table, problems = read_table(csv_path)
    found = sorted((p.line, p.kind) for p in problems)
    assert found == [(3, "bad label"), (4, "bad label"), (5, "unknown split"), (6, "empty path"), (8, "bad label")]
    assert all(p.severity == "error" for p in problems)
    assert table.labels.tolist() == [0, -1, -1, 1, 1, -1]
    assert table.line(5) == 8
    split_problem = next(p for p in problems if p.kind == "unknown split")
    assert "(write val)" in split_problem.message
    assert str(split_problem).startswith("error: line 5: split 'validation'")
    assert "'fake' is not 0 (real) or 1 (fake)" in str(problems[1])

    with pytest.raises(SchemaError) as info:
        load_table(csv_path)
    message = str(info.value)
    assert "has 5 bad row(s)" in message
    for line in (3, 4, 5, 6, 8):
        assert f"line {line}:" in message


def test_load_table_accepts_a_clean_csv(tmp_path):
    csv_path = write_text(tmp_path / "s.csv", "\ufeffpath , label\na.png,1\n")  # BOM and padded names
    table = load_table(csv_path, root=tmp_path)
    assert table.column("path") == ["a.png"] and table.labels.tolist() == [1]
    with pytest.raises(SchemaError, match="is not a folder"):
        load_table(csv_path, root=tmp_path / "nowhere")

"""Peak memory of one contacts-file import, run in a process of its own.

`python tests/import_memory_probe.py DATA_DIR FILE MODE` prints `growth_mb=N rows=M`: how far
the process's peak resident memory (VmHWM) rose above its resident memory once everything was
imported and the workspace opened. MODE `stream` imports through `audience_imports.import_file`
(chunks of 1,000 rows); `whole` through `parse_file` + `services.import_audience`, the file read whole.
`validate` writes `validate`'s result CSV (syntax only) through `file_validation` (two passes);
`validate-whole` through `read_contacts` + `preflight.validate_file`, the file read whole.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def main(data_dir: str, path: str, mode: str) -> None:
    from outreach_core import services
    from outreach_core.adapters.contact_files import parse_file
    from outreach_core.adapters.settings import Settings
    from outreach_core.adapters.workspace import open_workspace

    ws = open_workspace(Settings(_env_file=None, OUTREACH_DATA_DIR=Path(data_dir)))
    file = Path(path)
    out = Path(data_dir) / "out.csv"
    if mode == "validate":
        from outreach_core.services import file_validation

        warm_up = Path(data_dir) / "warm-up.csv"
        warm_up.write_text("email\nann@example.com\n")
        file_validation.validate_to_csv(ws, file_validation.FileCheck(warm_up, skip_mx=True), out)
        before = _status_mb("VmRSS")
        check = file_validation.FileCheck(file, skip_mx=True)
        rows = file_validation.validate_to_csv(ws, check, out).rows
    elif mode == "validate-whole":
        from outreach_core.services import file_sends, preflight

        before = _status_mb("VmRSS")
        parsed = file_sends.read_contacts(file)
        report = preflight.validate_file(ws, parsed, skip_mx=True)
        out.write_text(report.csv(), encoding="utf-8")
        rows = len(report.records)
    elif mode == "stream":
        from outreach_core.services import audience_imports

        options = audience_imports.FileOptions(file.name, chunk_rows=1_000)
        with file.open("rb") as handle:
            # warm up on the header so that lazily imported code is loaded before the baseline
            audience_imports.open_stream(handle, options)
            before = _status_mb("VmRSS")
            result = audience_imports.import_file(ws, handle, options, name="big", actor="probe")
        rows = result.audience.row_count
    else:
        before = _status_mb("VmRSS")
        parsed = parse_file(file.read_bytes(), source=file.name)
        rows = services.import_audience(ws, parsed, name="big", actor="probe").row_count
    print(f"growth_mb={_status_mb('VmHWM') - before:.1f} rows={rows}")
    ws.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])

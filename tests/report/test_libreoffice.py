"""A real spreadsheet program opens the workbook and prints it to PDF (LibreOffice, headless)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
TIMEOUT_S = 120


def _to_pdf(workbook: Path, out_dir: Path, profile: Path) -> Path:
    """Convert with a private LibreOffice profile, so parallel runs don't share one."""
    assert SOFFICE is not None
    completed = subprocess.run(
        [
            SOFFICE,
            f"-env:UserInstallation={profile.as_uri()}",
            "--headless",
            "--norestore",
            "--convert-to",
            "pdf",
            "--outdir",
            str(out_dir),
            str(workbook),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    pdf = out_dir / (workbook.stem + ".pdf")
    assert completed.returncode == 0, completed.stderr
    return pdf


@pytest.mark.skipif(
    SOFFICE is None,
    reason="LibreOffice (soffice) not installed: apt-get install -y --no-install-recommends "
    "libreoffice-calc-nogui poppler-utils fonts-crosextra-carlito",
)
def test_libreoffice_converts_the_workbook_to_pdf(written: Path, tmp_path: Path) -> None:
    """soffice --headless --convert-to pdf gives a non-empty PDF whose first page is the Summary."""
    out = tmp_path / "pdf"
    out.mkdir()
    pdf = _to_pdf(written, out, tmp_path / "lo-profile")
    assert pdf.exists()
    assert pdf.stat().st_size > 1000
    assert pdf.read_bytes().startswith(b"%PDF")
    pdftotext = shutil.which("pdftotext")
    if pdftotext:  # poppler-utils: check the first page really is the report's Summary
        text = subprocess.run(
            [pdftotext, "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        assert "IVIG audit report: dermatomyositis" in text
        assert "DOSE_ABOVE_MAX" in text
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm:  # and it renders as a picture
        subprocess.run(
            [pdftoppm, "-f", "1", "-l", "1", "-r", "50", "-png", str(pdf), str(out / "page")], check=True, timeout=60
        )
        assert any(p.suffix == ".png" and p.stat().st_size > 0 for p in out.iterdir())

"""Transfer sites: GPAW and xTB spectra of the same reference sites, scored on the same target."""

from pathlib import Path

import numpy as np
import pytest

from s2s.evaluation.transfer import transfer_metrics, transfer_sites

ROOT = Path(__file__).resolve().parents[1]


def test_reference_sites_pair_both_spectra_with_one_target():
    sites = transfer_sites(ROOT / "data" / "reference", ROOT / "data" / "cache" / "xtb")
    assert len(sites) == 32
    for s in sites:
        assert s.xtb.shape == s.gpaw.shape == (200,)
        assert np.isclose(s.xtb.sum() * 0.1, 1.0, atol=0.02) and np.isclose(s.gpaw.sum() * 0.1, 1.0, atol=0.02)
        assert s.target.n_atoms >= 2
    assert not np.allclose(sites[0].xtb, sites[0].gpaw)  # two methods, two spectra
    perfect = transfer_metrics(sites[:3], {"xtb": [s.target for s in sites[:3]]})
    assert perfect["n"] == 3 and perfect["xtb"]["rmsd_shell1"] < 1e-6 and perfect["xtb"]["validity"] == 1.0
    with pytest.raises(ValueError, match="generated"):
        transfer_metrics(sites[:3], {"gpaw": [sites[0].target]})


def test_no_reference_records_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no GPAW reference records"):
        transfer_sites(tmp_path, tmp_path)

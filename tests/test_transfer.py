"""Transfer sites: GPAW and xTB spectra of the same reference sites, scored on the same target."""

from pathlib import Path

import numpy as np
import pytest

from s2s.studies.transfer import transfer_metrics, transfer_sites

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
    assert perfect["xtb"]["rmsd_shell1_radial"] < 1e-9 and perfect["xtb"]["angle_shell1_error_deg"] < 1e-4
    with pytest.raises(ValueError, match="generated"):
        transfer_metrics(sites[:3], {"gpaw": [sites[0].target]})


def test_no_reference_records_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no GPAW reference records"):
        transfer_sites(tmp_path, tmp_path)


def _peak(center_eV: float, width_eV: float = 0.8) -> np.ndarray:
    from s2s.spectrum import GRID, normalize

    return normalize(np.exp(-0.5 * ((GRID - center_eV) / width_eV) ** 2) + 1e-6)


def _sites(centres, shift_eV=0.0):
    from s2s.environment import Environment
    from s2s.studies.transfer import TransferSite

    env = Environment(  # a bridging O: the excited O and two Si at 1.6 Å (SPECIES = ("Si", "O"))
        species=np.array([1, 0, 0]),
        coords=np.array([[0.0, 0, 0], [1.6, 0, 0], [-1.6, 0, 0]]),
        shell=np.array([0, 1, 1]),
    )
    return [TransferSite(f"s{i}", 0, env, _peak(c), _peak(c + shift_eV)) for i, c in enumerate(centres)]


def test_spectral_gap_recovers_a_rigid_shift_and_retrieval():
    from s2s.studies.transfer import spectral_gap

    sites = _sites([3.0, 6.0, 9.0, 12.0], shift_eV=0.5)
    gap = spectral_gap(sites)
    assert gap["n"] == 4
    assert gap["best_shift_eV"] == pytest.approx(0.5, abs=1e-9) and gap["best_sigma_eV"] == 0.0
    assert gap["rms_after_shift_broadening"] < 1e-3 < gap["rms_xtb_gpaw"]
    assert gap["gpaw_retrieves_own_xtb"] == 1.0
    assert gap["rms_nearest_other"] > gap["rms_xtb_gpaw"]  # a 0.5 eV shift is smaller than 3 eV between sites
    # a shift larger than the spacing between sites: the GPAW spectrum points to the wrong site
    assert spectral_gap(_sites([3.0, 6.0, 9.0, 12.0], shift_eV=3.0))["gpaw_retrieves_own_xtb"] < 0.5
    with pytest.raises(ValueError, match="at least 2"):
        spectral_gap(sites[:1])


def test_in_training_and_the_unseen_subset():
    from s2s.studies.transfer import in_training, template_environments, transfer_report

    sites = _sites([3.0, 6.0, 9.0], shift_eV=0.3)
    train = np.stack([sites[0].xtb, _peak(15.0)])
    seen = in_training(sites, train)
    assert seen.tolist() == [True, False, False]
    envs = [s.target for s in sites]
    tmpl = {k: template_environments(sites, train, [envs[0], envs[0]], k) for k in ("xtb", "gpaw")}
    rep = transfer_report(sites, {"xtb": envs, "gpaw": envs}, tmpl, seen)
    assert rep["n"] == 3 and rep["n_in_training"] == 1 and rep["unseen"]["n"] == 2
    assert rep["template"]["xtb"]["rmsd_shell1"] < 1e-6 and rep["unseen"]["template"]["gpaw"]["validity"] == 1.0
    with pytest.raises(ValueError, match="seen has shape"):
        transfer_report(sites, {"xtb": envs}, tmpl, seen[:2])

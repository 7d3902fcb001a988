"""The translator (xTB spectrum + environment -> reference spectrum) and the translated fidelity."""

from __future__ import annotations

import numpy as np
import pytest

from s2s.dataset import Dataset, SiteRecord
from s2s.environment import Environment
from s2s.forward.model import ForwardConfig, ForwardModel, spectrum_mse
from s2s.forward.train import train_forward
from s2s.forward.translate import TRANSLATED, translate, translation_pairs
from s2s.simulate import reference_sites as rs
from s2s.spectrum import GRID


def _peak(center: float) -> np.ndarray:
    y = np.exp(-0.5 * ((GRID - center) / 0.8) ** 2) + 0.01
    return y / np.trapezoid(y, GRID)


@pytest.fixture(scope="module")
def pairs():
    """One geometry for every site (the environment says nothing), xTB peak at a random energy p, the
    reference peak at p + 3 eV: only a model that reads the xTB spectrum can know the reference one."""
    rng = np.random.default_rng(0)
    env = Environment(
        species=np.array([1, 0, 0]),
        coords=np.array([[0.0, 0, 0], [1.61, 0, 0], [-0.5, 1.53, 0]]),
        shell=np.array([0, 1, 1]),
    )
    p = rng.uniform(2.0, 9.0, 40)
    return (
        [env] * 40,
        np.stack([_peak(x) for x in p]),
        np.stack([_peak(x + 3.0) for x in p]),
        [f"s{i}" for i in range(40)],
    )


def test_translator_reads_the_input_spectrum_and_a_forward_model_cannot(pairs, tmp_path):
    envs, xtb, ref, ids = pairs
    common = dict(kind="soap", hidden=32, batch_size=16, max_steps=150, eval_every=50, lr=3e-3, dropout=0.0)
    tr = train_forward(
        ForwardConfig(input_spectrum=True, **common), envs, ref, ids, tmp_path / "t", progress=False, input_spectra=xtb
    )
    fw = train_forward(ForwardConfig(**common), envs, ref, ids, tmp_path / "f", progress=False)
    model = ForwardModel.load(tmp_path / "t")
    assert model.cfg.input_spectrum
    pred = model.predict(envs[:10], spectra=xtb[:10])
    err_t = float(np.mean(spectrum_mse(pred, ref[:10])))
    err_f = float(np.mean(spectrum_mse(ForwardModel.load(tmp_path / "f").predict(envs[:10]), ref[:10])))
    assert tr.best_val_mse < 0.3 * fw.best_val_mse and err_t < 0.3 * err_f
    # the peak lands where the reference has it (3 eV above the input's), within a grid step or two
    for y_in, y_pred in zip(xtb[:10], pred):
        assert abs(GRID[np.argmax(y_pred)] - (GRID[np.argmax(y_in)] + 3.0)) < 0.35
    with pytest.raises(ValueError, match="give the sites' input spectra"):
        model.predict(envs[:2])
    with pytest.raises(ValueError, match="expected shape"):
        model.predict(envs[:2], spectra=xtb[:3])
    with pytest.raises(ValueError, match="takes no input spectra"):
        ForwardModel.load(tmp_path / "f").predict(envs[:2], spectra=xtb[:2])
    with pytest.raises(ValueError, match="needs kind 'soap'"):
        ForwardConfig(kind="distance", input_spectrum=True)


def test_translate_relabels_training_sites_only_and_the_translated_fidelity_prefers_reference(pairs, tmp_path):
    envs, xtb, ref, ids = pairs
    cfg = ForwardConfig(kind="soap", hidden=16, batch_size=16, max_steps=4, eval_every=2, input_spectrum=True)
    train_forward(cfg, envs, ref, ids, tmp_path / "t", progress=False, input_spectra=xtb)
    translator = ForwardModel.load(tmp_path / "t")
    recs = []
    for i in range(6):
        split = "test" if i == 5 else "train"
        recs.append(SiteRecord(xtb[i], envs[i], f"s{i}", 0, simulator="xtb-gfn1", split=split))
    recs.append(SiteRecord(ref[0], envs[0], "s0", 0, simulator=rs.SIMULATOR, split="train"))
    ds = Dataset(recs, {})
    envs_p, x_p, r_p, ids_p = translation_pairs(ds)
    assert ids_p == ["s0"] and np.allclose(x_p[0], xtb[0]) and np.allclose(r_p[0], ref[0])
    out = translate(ds, translator)
    tr = out.fidelity("translated")
    assert sorted(r.structure_id for r in tr) == ["s0", "s1", "s2", "s3", "s4"]  # not the test site s5
    assert all(r.simulator == TRANSLATED and r.split == "train" for r in tr)
    np.testing.assert_allclose(tr[1].spectrum, translator.predict([envs[1]], spectra=xtb[1:2])[0], rtol=1e-5)
    with pytest.raises(ValueError, match=r"not a translator .* \(its fidelity: None"):
        translate(ds, ForwardModel.load(_plain(tmp_path, envs, ref, ids)))
    # a forward model of reference spectra labels each site from its environment alone
    forward_ref = ForwardModel.load(_plain(tmp_path, envs, ref, ids, info={"fidelity": "reference"}))
    by_forward = translate(ds, forward_ref).fidelity("translated")
    assert [r.key for r in by_forward] == [r.key for r in tr] and by_forward[0].settings["kind"] == "forward"
    np.testing.assert_allclose(by_forward[1].spectrum, forward_ref.predict([envs[1]])[0], rtol=1e-5)
    assert tr[0].settings["kind"] == "translator"
    with pytest.raises(ValueError, match=r"\(its fidelity: 'xtb'"):
        translate(ds, ForwardModel.load(_plain(tmp_path / "x", envs, ref, ids, info={"fidelity": "xtb"})))
    with pytest.raises(ValueError, match="no site has both"):
        translation_pairs(Dataset(recs[:6], {}))


def _plain(tmp_path, envs, ref, ids, info=None):
    cfg = ForwardConfig(kind="soap", hidden=16, batch_size=16, max_steps=2, eval_every=2)
    train_forward(cfg, envs, ref, ids, tmp_path / "p", progress=False, info=info)
    return tmp_path / "p"

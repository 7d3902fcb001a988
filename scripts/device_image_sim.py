"""Dry run of the device image here: ``sitecustomize`` that makes every package installed in this Python but absent
from the device machine's image (its package list, as read 2026-11-17 in the device tool's KINDS.md) unimportable,
so that ``scripts/device_fidelity.sh`` shows here, on the CPU, whether the wheels of ``scripts/device_tree.sh`` are
all it needs.  Absent packages are put as ``None`` into ``sys.modules``: ``import x`` raises ModuleNotFoundError and
``importlib.util.find_spec`` gives None, as for a package that is not installed.

    mkdir -p /tmp/devsim && cp scripts/device_image_sim.py /tmp/devsim/sitecustomize.py
    # in a clone after `bash scripts/device_tree.sh slim` (and with .whl/ moved aside: its wheels are cp312):
    PYTHONPATH=/tmp/devsim PYTHON=/path/to/.venv/bin/python S2S_DEVICE=cpu S2S_DEVICE_PRESET=tiny \\
        S2S_DEVICE_MINUTES=0.1 OUT=/tmp/devsim/out bash scripts/device_fidelity.sh
"""

import os
import re
import sys

#: the device image's Python packages (distribution names)
IMAGE = set(
    """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
    charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
    cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
    flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
    huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
    jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
    llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
    multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
    nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
    nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13
    nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless
    opt-einsum opt-einsum-fx optax optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip
    pluggy portalocker prometheus-client propcache protobuf psutil py-cpuinfo pyarrow pybind11 pygments pyparsing
    pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
    python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core
    scikit-image scikit-learn scipy seaborn sentence-transformers sentencepiece setuptools shellingham simplejson
    six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
    tifffile tiktoken timm tokenizers toolz torch torch-geometric torchaudio torchdiffeq torchmetrics torchvision
    tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug
    wheel wrapt xarray xxhash yarl zipp
    """.split()
)
#: import names whose distribution is named otherwise
ALIAS = {
    "pil": "pillow",
    "dateutil": "python-dateutil",
    "yaml": "pyyaml",
    "mpl_toolkits": "matplotlib",
    "pylab": "matplotlib",
    "torchgen": "torch",
    "functorch": "torch",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "pkg_resources": "setuptools",
    "google": "protobuf",
    "attr": "attrs",
    "cv2": "opencv-python-headless",
    "markdown_it": "markdown-it-py",
    "py": "pytest",
}
#: what the device run carries as wheels (scripts/device_tree.sh) and the package itself
CARRIED = {"pymatgen", "monty", "orjson", "ruamel", "s2s"}


def _norm(name: str) -> str:
    return name.lower().replace("-", "_")


def absent(site_packages: str) -> list[str]:
    """Top-level names in ``site_packages`` that the image lacks and the run does not carry."""
    image = {_norm(x) for x in IMAGE}
    out = []
    for entry in sorted(os.listdir(site_packages)):
        if entry.endswith((".dist-info", ".egg-info", ".pth")) or entry.startswith(("_", ".")):
            continue
        name = re.split(r"[.\-]", entry)[0]
        low = name.lower()
        if low in CARRIED or _norm(low) in image or _norm(ALIAS.get(low, "")) in image:
            continue
        out.append(name)
    return out


HIDDEN = [n for p in sys.path if p.endswith("site-packages") and os.path.isdir(p) for n in absent(p)]
for _name in HIDDEN:
    sys.modules[_name] = None

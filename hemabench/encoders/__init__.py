"""The encoder registry: image encoders described by YAML specs, loaded with ``load_encoder``.

Weights are looked for, in order, in a file given with ``weights=`` (``--weights PATH``);
in the weights folder (``weights_dir=``, else ``$HEMABENCH_WEIGHTS``, else
``<hemabench cache>/weights``) as ``<encoder name>.safetensors`` or ``<encoder name>.pth``
(``.pt``/``.bin`` too, or the file's original name such as ``DinoBloom-B.pth`` or
``ctranspath.pth``); in the Hugging Face cache; and finally on the hub, unless
``HF_HUB_OFFLINE=1``. Random baselines and the handcrafted encoder need no download.
A name ``local:DIR`` loads the folder DIR written by ``hemabench pretrain`` (see local.py).
"""

from hemabench.encoders.build import LoadedEncoder, state_dict_sha256
from hemabench.encoders.local import load_encoder  # the registry's, plus local:DIR folders
from hemabench.encoders.spec import (
    ENCODERS,
    EncoderSpec,
    SpecError,
    WeightSource,
    register_spec,
    registered_spec,
    spec_from_dict,
    unregister_spec,
)
from hemabench.encoders.weights import (
    EncoderWeightsInvalid,
    EncoderWeightsMissing,
    default_weights_dir,
    folder_file_names,
)

__all__ = [
    "ENCODERS",
    "EncoderSpec",
    "EncoderWeightsInvalid",
    "EncoderWeightsMissing",
    "LoadedEncoder",
    "SpecError",
    "WeightSource",
    "default_weights_dir",
    "folder_file_names",
    "load_encoder",
    "register_spec",
    "registered_spec",
    "spec_from_dict",
    "state_dict_sha256",
    "unregister_spec",
]

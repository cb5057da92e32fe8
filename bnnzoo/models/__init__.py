"""Binary model families behind one registry.

!!! example
    ```python
    from bnnzoo.models import create_model, list_models

    assert {"binarynet", "binarynet_mlp", "reactnet"} <= set(list_models())
    model = create_model("binarynet", input_shape=(28, 28, 1), width=0.25)
    assert model.output_shape == (None, 10)
    ```
"""

from bnnzoo.models import binarynet, larq_zoo_families, reactnet, resnet  # noqa: F401  (registers the families)
from bnnzoo.models.registry import (
    FAMILY_DEFAULT,
    ModelSpec,
    create_model,
    get_model_spec,
    list_models,
    register_model,
)

create = create_model

__all__ = ["FAMILY_DEFAULT", "ModelSpec", "create", "create_model", "get_model_spec", "list_models", "register_model"]

"""surrogate: emulators of GEOS-Chem/CMAQ trained on their runs, whose gradients replicate
adjoint sensitivities."""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from ._abstract import AbstractEmulator as AbstractEmulator  # noqa: E402
from ._abstract import EmulatorLabels as EmulatorLabels  # noqa: E402
from ._abstract import Envelope as Envelope  # noqa: E402
from ._abstract import OutOfEnvelopeWarning as OutOfEnvelopeWarning  # noqa: E402
from ._abstract import default_envelope as default_envelope  # noqa: E402
from ._abstract import envelope_from_design as envelope_from_design  # noqa: E402
from ._abstract import with_envelope_policy as with_envelope_policy  # noqa: E402
from ._design import propose as propose  # noqa: E402
from ._ensemble import Ensemble as Ensemble  # noqa: E402
from ._evaluate import agreement_stats as agreement_stats  # noqa: E402
from ._evaluate import emulator_gradients as emulator_gradients  # noqa: E402
from ._evaluate import error_metrics as error_metrics  # noqa: E402
from ._evaluate import evaluate as evaluate  # noqa: E402
from ._evaluate import gradient_agreement as gradient_agreement  # noqa: E402
from ._evaluate import jacobians as jacobians  # noqa: E402
from ._evaluate import per_group_agreement as per_group_agreement  # noqa: E402
from ._evaluate import predict as predict  # noqa: E402
from ._evaluate import spurious_sensitivity as spurious_sensitivity  # noqa: E402
from ._evaluate import top_mass_mask as top_mass_mask  # noqa: E402
from ._fit import fit as fit  # noqa: E402
from ._methods import AbstractFitMethod as AbstractFitMethod  # noqa: E402
from ._methods import Adam as Adam  # noqa: E402
from ._methods import Checkpoint as Checkpoint  # noqa: E402
from ._methods import ClosedForm as ClosedForm  # noqa: E402
from ._fit import ridge_loo as ridge_loo  # noqa: E402
from ._fit import run_arrays as run_arrays  # noqa: E402
from ._gridded import GriddedEmulator as GriddedEmulator  # noqa: E402
from ._linear import LinearEmulator as LinearEmulator  # noqa: E402
from ._mlp import MLPEmulator as MLPEmulator  # noqa: E402
from ._polynomial import PolynomialEmulator as PolynomialEmulator  # noqa: E402
from ._roles import DEFAULT_CAN_AFFECT as DEFAULT_CAN_AFFECT  # noqa: E402
from ._roles import structural_zeros as structural_zeros  # noqa: E402
from ._structured import StructuredEmulator as StructuredEmulator  # noqa: E402
from ._serialise import load as load  # noqa: E402
from ._serialise import load_metadata as load_metadata  # noqa: E402
from ._serialise import save as save  # noqa: E402

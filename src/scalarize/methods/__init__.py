"""How per-task losses become an update: scalarization and the MTO methods.

Each method's module registers its class (``@register``); importing every module here makes the
registry complete.
"""

from scalarize.methods.aioli import Aioli
from scalarize.methods.aligned_mtl import AlignedMTL
from scalarize.methods.base import (
    AFTER_STEP,
    FEATURE_GRADIENTS,
    INDEPENDENT_BATCHES,
    LOSSES,
    OWN_OPTIMIZER,
    PREFERENCE_INPUT,
    SHARED_GRADIENTS,
    GradientMethod,
    Method,
    MethodError,
    check_weights,
)
from scalarize.methods.cagrad import CAGrad
from scalarize.methods.con_fig import ConFIG
from scalarize.methods.context import StepContext
from scalarize.methods.cosmos import Cosmos
from scalarize.methods.db_mtl import DBMTL
from scalarize.methods.doremi import DoReMi
from scalarize.methods.dualproj import DualProj
from scalarize.methods.dwa import DWA
from scalarize.methods.excess_mtl import ExcessMTL
from scalarize.methods.fairgrad import FairGrad
from scalarize.methods.famo import FAMO
from scalarize.methods.frozen import FrozenWeights
from scalarize.methods.gls import GLS
from scalarize.methods.graddrop import GradDrop
from scalarize.methods.gradient_similarity import GradientSimilarity
from scalarize.methods.gradnorm import GradNorm
from scalarize.methods.gradvac import GradVac
from scalarize.methods.imtl_g import IMTLG
from scalarize.methods.imtl_l import IMTLL
from scalarize.methods.metabalance import MetaBalance
from scalarize.methods.mgda import MGDA
from scalarize.methods.mgda_ub import MGDAUB
from scalarize.methods.moco import MoCo
from scalarize.methods.modo import MoDo
from scalarize.methods.mtadam import MTAdam
from scalarize.methods.nash_mtl import NashMTL
from scalarize.methods.pcgrad import PCGrad
from scalarize.methods.registry import available_methods, build_method, register
from scalarize.methods.rlw import RLW
from scalarize.methods.scalarization import Scalarization
from scalarize.methods.scheduled import ScheduledScalarization
from scalarize.methods.sdmgrad import SDMGrad
from scalarize.methods.stch import STCH
from scalarize.methods.upgrad import UPGrad
from scalarize.methods.uw import UncertaintyWeighting

__all__ = [
    "AFTER_STEP",
    "Aioli",
    "AlignedMTL",
    "CAGrad",
    "ConFIG",
    "Cosmos",
    "DBMTL",
    "DWA",
    "DoReMi",
    "DualProj",
    "ExcessMTL",
    "FAMO",
    "FEATURE_GRADIENTS",
    "FairGrad",
    "FrozenWeights",
    "GLS",
    "GradDrop",
    "GradNorm",
    "GradVac",
    "GradientMethod",
    "GradientSimilarity",
    "IMTLG",
    "IMTLL",
    "INDEPENDENT_BATCHES",
    "LOSSES",
    "MGDA",
    "MGDAUB",
    "MTAdam",
    "MetaBalance",
    "Method",
    "MethodError",
    "MoCo",
    "MoDo",
    "NashMTL",
    "OWN_OPTIMIZER",
    "PCGrad",
    "PREFERENCE_INPUT",
    "RLW",
    "SDMGrad",
    "SHARED_GRADIENTS",
    "STCH",
    "Scalarization",
    "ScheduledScalarization",
    "StepContext",
    "UPGrad",
    "UncertaintyWeighting",
    "available_methods",
    "build_method",
    "check_weights",
    "register",
]

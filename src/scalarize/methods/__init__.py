"""How per-task losses become an update: scalarization and the MTO methods."""

from scalarize.methods.aligned_mtl import AlignedMTL
from scalarize.methods.base import (
    AFTER_STEP,
    FEATURE_GRADIENTS,
    INDEPENDENT_BATCHES,
    LOSSES,
    OWN_OPTIMIZER,
    SHARED_GRADIENTS,
    GradientMethod,
    Method,
    MethodError,
    check_weights,
)
from scalarize.methods.cagrad import CAGrad
from scalarize.methods.config import ConFIG
from scalarize.methods.context import StepContext
from scalarize.methods.db_mtl import DBMTL
from scalarize.methods.dualproj import DualProj
from scalarize.methods.dwa import DWA
from scalarize.methods.excess_mtl import ExcessMTL
from scalarize.methods.fairgrad import FairGrad
from scalarize.methods.famo import FAMO
from scalarize.methods.frozen import FrozenWeights
from scalarize.methods.gls import GLS
from scalarize.methods.gradient_similarity import GradientSimilarity
from scalarize.methods.gradnorm import GradNorm
from scalarize.methods.graddrop import GradDrop
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

register(Scalarization)
register(UncertaintyWeighting)
register(IMTLL)
register(DWA)
register(RLW)
register(FAMO)
register(GradNorm)
register(PCGrad)
register(GradVac)
register(GradDrop)
register(MGDA)
register(MGDAUB)
register(CAGrad)
register(IMTLG)
register(NashMTL)
register(AlignedMTL)
register(UPGrad)
register(GradientSimilarity)
register(MetaBalance)
register(MTAdam)
register(ScheduledScalarization)
register(STCH)
register(GLS)
register(DBMTL)
register(ExcessMTL)
register(FairGrad)
register(SDMGrad)
register(MoDo)
register(MoCo)
register(ConFIG)
register(DualProj)
register(FrozenWeights)

__all__ = [
    "AFTER_STEP",
    "FEATURE_GRADIENTS",
    "INDEPENDENT_BATCHES",
    "LOSSES",
    "OWN_OPTIMIZER",
    "SHARED_GRADIENTS",
    "GradientMethod",
    "Method",
    "MethodError",
    "Scalarization",
    "ScheduledScalarization",
    "StepContext",
    "available_methods",
    "build_method",
    "check_weights",
    "register",
]

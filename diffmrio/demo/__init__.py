"""The demo pipeline and reports: the synthetic world's CTM ensemble, emulator training (cached) and health
inputs (`demo_chain`), the report builder, and `run_demo` behind `diffmrio demo`. The only part of diffmrio that
draws figures: matplotlib is imported here and in the experiments, never by the core."""

from ._pipeline import (
    ADULT_AGES as ADULT_AGES,
    DEMO_FULL as DEMO_FULL,
    DEMO_QUICK as DEMO_QUICK,
    DemoChain as DemoChain,
    base_emissions as base_emissions,
    ctm_runs as ctm_runs,
    demo_chain as demo_chain,
    demo_config as demo_config,
    demo_ctm as demo_ctm,
    demo_health_inputs as demo_health_inputs,
)
from ._report import Report as Report, subplots as subplots, table_md as table_md
from ._job import DemoOutputError as DemoOutputError, run_demo as run_demo

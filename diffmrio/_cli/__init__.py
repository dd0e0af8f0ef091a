"""The subcommands of `diffmrio` (registered by `diffmrio.cli.main`): real data (`data`), CTM run folders
(`runs`) and SLURM array jobs (`slurm`)."""

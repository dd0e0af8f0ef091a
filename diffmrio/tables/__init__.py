"""Building and reading tables: RAS/GRAS balancing, ANAIS (and updating a whole MRIO by it), concordances (aggregation, splitting, linking
tables), interregional trade from single-region tables (gravity prior + RAS), and readers for real tables (CEADs workbooks, WIOD world tables, emission inventories and new-year margins as CSV) with the cleaning helper for their
rounding artefacts."""

from ._balancing import BalanceReport as BalanceReport, gras as gras, ras as ras
from ._anais import AnaisInfeasibleError as AnaisInfeasibleError, AnaisReport as AnaisReport, anais as anais
from ._update import anais_update as anais_update, read_margins_csv as read_margins_csv
from ._concordance import (
    aggregate_arrays as aggregate_arrays,
    aggregate_flows as aggregate_flows,
    aggregate_mrio as aggregate_mrio,
    aggregation_matrix as aggregation_matrix,
    apply_concordance as apply_concordance,
    check_concordance as check_concordance,
    concordance_matrix as concordance_matrix,
    link_tables as link_tables,
    split_concordance as split_concordance,
    split_sector as split_sector,
)
from ._gravity import (
    distance_matrix as distance_matrix,
    gravity_prior as gravity_prior,
    gravity_ras_rebuild as gravity_ras_rebuild,
    read_distances_csv as read_distances_csv,
    regional_totals as regional_totals,
)
from ._inventory import read_emissions_csv as read_emissions_csv
from ._ceads import CEADSLayout as CEADSLayout, read_ceads as read_ceads
from ._wiod import clean_table as clean_table, read_wiod as read_wiod

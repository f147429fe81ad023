from starship_dags.operators.connections import ConnectionsMigrationOperator
from starship_dags.operators.pools import PoolsMigrationOperator
from starship_dags.operators.variables import VariablesMigrationOperator

__all__ = ["ConnectionsMigrationOperator", "PoolsMigrationOperator", "VariablesMigrationOperator"]

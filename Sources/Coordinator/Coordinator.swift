// The tracing API, graph compiler and scheduler arrive with the Interventions and Cluster issues.
import Engine

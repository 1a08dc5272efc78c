// The pipeline-stage runtime (graph interpreter, ZeroMQ serving) arrives with the Interventions and Cluster issues.
import Engine

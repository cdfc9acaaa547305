"""fedcore: the runtime shared by the coordinator and the client daemons."""

"""fedclient: the client daemon that trains on local data and pushes compressed updates."""

"""How the roles' messages travel: ZeroMQ sockets bound where the config says (`sockets`), CURVE
encryption and admission of known actors (`curve`), and the gloo group weights are broadcast
over on CPU (`gloo`). What travels is defined in `wire`, which knows nothing of sockets."""

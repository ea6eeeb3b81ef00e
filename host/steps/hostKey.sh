# Records the host's SSH host key (print_host_key): the key every later step pins when the first
# step recorded none (a stack whose first contact ran before host keys were recorded). Runs once
# per host, as the deploy user with the admin key.
print_host_key

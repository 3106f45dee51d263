"""`imagewright serve` and `deploy`: an app's web endpoints, served on 127.0.0.1.

- endpoints.py finds what an app serves (web functions, web methods of classes, servers) and
  gives each a stable port;
- proxy.py accepts connections on those ports and forwards them to the endpoint's containers,
  starting and stopping containers as the load asks;
- session.py builds the app, serves it, runs its schedules, and reloads it after an edit;
- deployments.py keeps deployed apps running in the background and lets other processes call
  their functions.
"""

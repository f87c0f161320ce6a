"""``gridtokenx demo``: the whole system on one machine, run the way an operator runs it.

A top-level package of its own (not under gridtokenx/, which every role shares and which must not import the
gateway or the backend): the demo starts meters, gateways, a broker, the backend service and wallets, so it
depends on all of them.
"""

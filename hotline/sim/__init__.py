"""Twilio's side of a call, simulated: the caller (`hotline call`) and the load generator."""

"""Availability: service groups, resources (KVMGuest …) and virtual business services. Not built yet."""

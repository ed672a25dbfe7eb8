"""Provisioning: golden images and rapid VM provisioning. Not built yet."""

"""Provisioning services: golden images, provisioning requests, data disks and volume clones, savings.

Views, API views, the management command and the Celery tasks all call these functions; none of them
holds logic of its own.
"""

"""Suite-wide settings."""

from hypothesis import HealthCheck, settings

# Hypothesis times every example by the wall clock (a 200 ms deadline, and the too_slow health check on data
# generation): on a loaded machine that fails properties which hold. Nothing here is a timing property.
settings.register_profile("invora", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("invora")

import SLPolicy

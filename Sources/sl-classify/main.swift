import SLCommand

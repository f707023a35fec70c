import SLMessage

"""`teeplane demo`: TEEPlane's whole job on one machine, each step checked and shown with its evidence."""

"""The PostgreSQL backend (base.py, with the plain-SQL helpers), the read
replica's router (routers.py) and what a connection fault is (faults.py).
"""

"""Cluster mode: brokers share membership, controller election and partition state through etcd."""

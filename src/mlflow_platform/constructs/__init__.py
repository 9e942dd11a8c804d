"""Constructs that both templates build with: the VPC and its access-log bucket."""

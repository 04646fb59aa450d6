"""Shared network building blocks: attention, transformer blocks, UNets, convolution trunks, the skip network;
:mod:`genlab.nn.sam` holds the Segment-Anything-style networks."""

"""On-chain programs in freestanding C, their build tool and Python clients."""

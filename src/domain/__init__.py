"""depot's core: the catalog, the query model, the ports and the rules. No framework imports here."""

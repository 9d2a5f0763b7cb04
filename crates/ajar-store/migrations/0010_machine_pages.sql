-- A page of a subscription's (or a resource group's) machines is read in id order from here.
CREATE INDEX machines_page_by_subscription ON machines (subscription, id);
CREATE INDEX machines_page_by_group ON machines (subscription, resource_group, id);
